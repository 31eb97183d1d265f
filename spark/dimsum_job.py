"""Dataproc's main file for the similarity job: the job is
:mod:`simrec.jobs.spark_similarity`, shipped in the simrec package zip (``--py-files``)."""

import sys

from simrec.jobs.spark_similarity import main

if __name__ == "__main__":
    sys.exit(main())
