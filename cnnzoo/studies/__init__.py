"""Studies: a grid of runs (:mod:`~cnnzoo.studies.sweep`), its points (:mod:`~cnnzoo.studies.points`),
and the table and figures made from what the runs wrote (:mod:`~cnnzoo.studies.report`,
:mod:`~cnnzoo.studies.plots`). Run directories are read through :mod:`cnnzoo.run.workdir`."""
