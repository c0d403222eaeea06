"""Training plumbing of the stages that train: checkpoint IO, the Trainer, fitting a specialist."""
