"""The engine: the lifecycle every target shares, written once (lifecycle.deploy), and its
result types. It drives a `deployer.targets.base.Target` and never imports the CLI."""
