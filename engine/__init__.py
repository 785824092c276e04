"""ml-connector: keeps JAGGAER procurement data and SAP Business One consistent."""

__version__ = "0.1.0"
