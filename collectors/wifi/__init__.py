"""Wi-Fi: what the air says about the networks around, from captures and from the OS's own scanners.

``pcap`` reads capture files, ``frames`` finds beacons and probe responses in
them, ``ie`` decodes the security elements, ``wpa_ctrl``/``nmcli``/``netsh``/
``airport`` read the live scanners, and ``survey`` is the collector that
picks a source and returns one list of networks, whichever it used.
"""
