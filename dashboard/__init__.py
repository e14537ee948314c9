"""mamoru's compliance dashboard: signed reports in, each office's safeguards per guideline item over time out.

A Django project kept as one app. It is imported only by ``mamoru dashboard …`` and by the dashboard's tests,
so an agent that only scans never loads Django.
"""
