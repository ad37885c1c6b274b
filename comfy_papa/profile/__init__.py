"""Named taste profiles on disk: adapter, optimizer state, replay buffer, history, manifest."""
