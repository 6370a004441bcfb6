"""The engine: the policy, the decision, running checks (fail closed) and the gate's stages."""
