"""The camera node: capture frames, detect and gate faces, track them, embed the best of each track at a
bounded rate, and stream the embeddings to the matcher."""
