from contactreports.cli.main import main

main()
