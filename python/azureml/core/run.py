"""azureml.core.run.Run under trainrun: see azureml/core/__init__.py."""
import os
import shutil

import trainrun


class Experiment:
    def __init__(self, workspace=None, name=None):
        self.workspace = workspace
        self.name = name or os.environ.get("AZUREML_EXPERIMENT_NAME", "")

    def __repr__(self):
        return "Experiment(name=%r)" % self.name


class Run:
    """The current run. Run.get_context() is the one way to get it, as in Azure ML."""

    _context = None

    def __init__(self, run_id, parent=None):
        self.id = run_id
        self.number = 0
        self.experiment = Experiment()
        self.parent = parent
        self._tags = {}
        self._metrics = {}
        self.status = "Running"

    @classmethod
    def get_context(cls, allow_offline=True, **_):
        if cls._context is None:
            run_id = os.environ.get("AZUREML_RUN_ID") or os.environ.get("TRAINRUN_RUN_ID")
            if not run_id and not allow_offline:
                raise RuntimeError("not in a run (AZUREML_RUN_ID is not set)")
            run_id = run_id or "OfflineRun"
            # Scripts of Azure ML's HyperDrive log to run.parent: the parent is the
            # same run here, so those metrics land in the same history.
            cls._context = cls(run_id, parent=cls(run_id))
        return cls._context

    def __repr__(self):
        return "Run(id=%r, experiment=%r)" % (self.id, self.experiment.name)

    # Metrics.
    def _keep(self, name, value):
        self._metrics.setdefault(name, []).append(value)

    def log(self, name, value, description="", step=None):
        self._keep(name, value)
        trainrun.log(name, value, step=step)

    def log_list(self, name, value, description=""):
        for v in value:
            self.log(name, v)

    def log_row(self, name, description=None, **kwargs):
        """One row of table `name`: each column becomes metric "name/column"."""
        for column, v in kwargs.items():
            self.log("%s/%s" % (name, column), v)

    def log_table(self, name, value, description=""):
        """Columns {column: [values]}: each becomes metric "name/column"."""
        for column, values in value.items():
            self.log_list("%s/%s" % (name, column), values)

    def log_accuracy_table(self, name, value, description=""):
        self.tag(name, str(value))

    def log_confusion_matrix(self, name, value, description=""):
        self.tag(name, str(value))

    def log_image(self, name, path=None, plot=None, description=""):
        """Copies the image file into ./outputs (run history keeps it)."""
        if path is not None:
            outputs = os.environ.get("TRAINRUN_OUTPUTS_DIR", "outputs")
            os.makedirs(outputs, exist_ok=True)
            shutil.copy(path, os.path.join(outputs, os.path.basename(path)))
        elif plot is not None:
            outputs = os.environ.get("TRAINRUN_OUTPUTS_DIR", "outputs")
            os.makedirs(outputs, exist_ok=True)
            plot.savefig(os.path.join(outputs, name + ".png"))

    def get_metrics(self, name=None, **_):
        """What this process logged (Azure ML returns the run's, from the service)."""
        shown = {k: (v[0] if len(v) == 1 else list(v)) for k, v in self._metrics.items()}
        return {name: shown[name]} if name is not None and name in shown else \
            ({} if name is not None else shown)

    # Tags and properties.
    def tag(self, key, value=None):
        value = "" if value is None else str(value)
        self._tags[key] = value
        trainrun.set_tag(key, value)

    def set_tags(self, tags):
        for key, value in tags.items():
            self.tag(key, value)

    def get_tags(self):
        return dict(self._tags)

    def add_properties(self, properties):
        self.set_tags(properties)

    def get_properties(self):
        return dict(self._tags)

    def get_status(self):
        return self.status

    # Files: ./outputs reaches history at the end of the run, as in Azure ML.
    def upload_file(self, name, path_or_stream):
        outputs = os.environ.get("TRAINRUN_OUTPUTS_DIR", "outputs")
        target = os.path.join(outputs, name[len("outputs/"):] if name.startswith("outputs/")
                              else name)
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        shutil.copy(path_or_stream, target)

    def flush(self):
        pass

    # The end of the run is trainrun's to record (the ranks' exit codes).
    def complete(self, _set_status=True):
        self.status = "Completed"

    def fail(self, error_details=None, error_code=None, _set_status=True):
        self.status = "Failed"

    def cancel(self):
        self.status = "Canceled"

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)

        def refused(*_, **__):
            raise NotImplementedError(
                "Run.%s belongs to the Azure ML service; trainrun's azureml stand-in "
                "does not provide it" % name)
        return refused
