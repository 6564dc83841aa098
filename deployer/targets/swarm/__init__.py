"""The Docker Swarm target (`target.SwarmTarget`): images instead of tarballs, a stack
instead of systemd units.

Layers: settings/spec/compose/dockerfiles are pure; build, deliver, observe, rollout and
lock touch docker or SSH; target puts them behind the Target protocol the engine drives,
and manage holds the operator's rollback, status and releases.
"""
