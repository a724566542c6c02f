"""Joint inference: hard faces go to the cloud's model within a budget."""
