"""What a user installs and reads: the wheel, the conda package and workflow, the README."""
