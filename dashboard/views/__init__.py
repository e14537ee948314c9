"""The dashboard's pages, one module per area: home/login (home), ingest (api, upload), organisation pages
(overview, hosts, checks, exports) and administration (admin)."""
