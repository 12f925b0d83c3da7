"""The harness: suite files -> run specs -> training -> scoring -> store."""
