import Foundation
import Testing
@testable import RotaCron
