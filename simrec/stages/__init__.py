"""Stage logic shared by the cloud functions and the local dispatcher."""
