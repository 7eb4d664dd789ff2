"""The local provider: the same journey on one machine with no cloud.

An MLflow tracking server (sqlite + a local artifact folder) and one MLServer process per served
model (with ``mlserver-mlflow``, the runtime KServe's ``kserve-mlserver`` runs), supervised by
pid and recorded under ``$KSERVECTL_HOME/<cluster>/local/``.
"""
