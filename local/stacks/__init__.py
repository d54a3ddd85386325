"""The local stacks: the embedded one (`scones up`), the compose one, its bootstrap, and the
state file (`.scones/stack.json`) that tells every command where a running stack is."""
