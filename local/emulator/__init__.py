"""What makes moto behave like AWS: the moto host process, the Lambda process runner and its
workers, and (in `moto_seam`) every touch of moto's internals."""
