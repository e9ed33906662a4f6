from auditrelay.cli import main

main()
