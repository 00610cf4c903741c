import RotaSQLite
