"""What makes moto behave like AWS: the moto host process, the Lambda process runner and its
workers, the SageMaker control plane (`sagemaker_endpoints`: endpoints as model server processes)
and Runtime API router (`sagemaker_runtime`), and (in `moto_seam`) every touch of moto's internals."""
