"""The `scones` command: click commands that stay thin over the packages beside this one."""
