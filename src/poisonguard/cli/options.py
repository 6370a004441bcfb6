"""Options more than one command takes."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from poisonguard.io.reading import CsvFormat


def add_csv_options(parser: argparse.ArgumentParser) -> None:
    """``--csv-sep`` and ``--csv-decimal``: how CSV inputs are split when detection gets it wrong."""
    parser.add_argument("--csv-sep", metavar="CHAR",
                        help="field separator of CSV inputs: one character, or tab, comma, semicolon, pipe "
                        "(default: detected from each file: , ; tab or |)")
    parser.add_argument("--csv-decimal", metavar="CHAR", choices=(".", ","),
                        help="decimal mark of numbers in CSV inputs, '.' or ',' (default: detected)")


def csv_format(args: argparse.Namespace) -> CsvFormat:
    """The :class:`~poisonguard.io.reading.CsvFormat` the options ask for (raises UsageError)."""
    from poisonguard.io.reading import CsvFormat

    return CsvFormat.from_options(args.csv_sep, args.csv_decimal)
