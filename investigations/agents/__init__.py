"""The Claude agents: the loop, the lead and the specialists, their prompts (no Django)."""
