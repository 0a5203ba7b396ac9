@_exported import MixtralTokenizers
