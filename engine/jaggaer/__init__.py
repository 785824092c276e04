"""JAGGAER J1P: token auth, HTTP conventions (returnCode, paging, retries), the keyset read."""
