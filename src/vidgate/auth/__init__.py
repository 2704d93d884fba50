"""Who is calling: authentication modes none, apikey and jwt (docs/SECURITY.md)."""
