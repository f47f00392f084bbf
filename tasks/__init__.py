"""Built-in verifiable tasks: prompts with known answers, so a rule judge can score them."""
