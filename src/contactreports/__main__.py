from contactreports.cli import main

main()
