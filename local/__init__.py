"""Running the workflow anywhere but in production code paths.

- `emulator/`: what makes moto behave like AWS (moto host, Lambda runner, SageMaker endpoints as
  model server processes, the one moto seam)
- `stacks/`: the embedded and compose stacks, the compose bootstrap, the stack state file, the offline image build
- `deploy/`: the one deploy path, used unchanged against moto, LocalStack and AWS
- `aws/`: promotion to real AWS and SageMaker training jobs
- `cli/`: the `scones` command
- `workflow_client.py`: starting executions and reading their outcomes
"""
