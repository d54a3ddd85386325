from scones.local.cli.main import main

main()
