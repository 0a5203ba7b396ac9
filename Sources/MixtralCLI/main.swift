print("mixtral")
