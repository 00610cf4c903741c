import Rota
print("rota")
