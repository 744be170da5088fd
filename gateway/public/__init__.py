"""The public plane: who may call port 8080, how much, and how answers are served."""
