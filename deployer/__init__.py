"""deployer: agentless deployments on Ansible."""
