"""Face tracks in video, numpy only: motion, association, the tracker, label votes and line counting."""
