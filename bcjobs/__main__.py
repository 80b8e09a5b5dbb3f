"""`python -m bcjobs`: the same CLI as the `bcjobs` console script (see bcjobs/cli/)."""

from bcjobs.cli import main

if __name__ == "__main__":
    main()
