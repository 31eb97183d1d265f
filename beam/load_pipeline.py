"""The Flex Template's main file for the load pipeline: the pipeline is
:mod:`simrec.jobs.beam_load`, which the template image and its workers install."""

import sys

from simrec.jobs.beam_load import main

if __name__ == "__main__":
    sys.exit(main())
