from kservectl.cli.main import main

main()
