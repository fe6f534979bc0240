from likeness.cli import main

main()
