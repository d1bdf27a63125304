"""feeder: publish a folder of plain-text articles as Atom, RSS and JSON Feed."""

__version__ = "0.1.0"
