print("luagan")
