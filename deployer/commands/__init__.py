"""Commands: each takes resolved config, does its work and returns a frozen result.

Rendering (rich text or JSON) happens in `deployer.render`; parsing in `deployer.cli`.
"""
