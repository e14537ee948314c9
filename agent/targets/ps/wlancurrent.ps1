# Which Wi-Fi network the PC is connected to now (TX-01), never from "netsh wlan show interfaces" (prose in
# the PC's language). Get-NetAdapter tells which adapters are Wi-Fi (NdisPhysicalMedium 9 =
# NdisPhysicalMediumNative802_11, PhysicalMediaType "Native 802.11") and their InterfaceGuid (the folder of
# their saved WLAN profiles); Get-NetConnectionProfile which network each connected interface is on.
param($A)
$ErrorActionPreference = 'Stop'
$adapters = @(Get-NetAdapter)
$profiles = @(Get-NetConnectionProfile -ErrorAction SilentlyContinue)
[ordered]@{
    adapters = @(foreach ($a in $adapters) {
        [ordered]@{ Name = [string]$a.Name; InterfaceIndex = [int]$a.InterfaceIndex
                    InterfaceGuid = [string]$a.InterfaceGuid; Status = [string]$a.Status
                    MediaConnectionState = [string]$a.MediaConnectionState
                    PhysicalMediaType = [string]$a.PhysicalMediaType; NdisPhysicalMedium = [int]$a.NdisPhysicalMedium }
    })
    connections = @(foreach ($p in $profiles) {
        [ordered]@{ Name = [string]$p.Name; InterfaceAlias = [string]$p.InterfaceAlias
                    InterfaceIndex = [int]$p.InterfaceIndex; NetworkCategory = [string]$p.NetworkCategory
                    IPv4Connectivity = [string]$p.IPv4Connectivity; IPv6Connectivity = [string]$p.IPv6Connectivity }
    })
}
