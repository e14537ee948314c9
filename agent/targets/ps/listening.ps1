# Listening sockets and their owners (TX-02), as CIM objects, never as netstat's prose:
# Get-NetTCPConnection (MSFT_NetTCPConnection: LocalAddress, LocalPort, State 2 = Listen, OwningProcess)
# and Get-NetUDPEndpoint (MSFT_NetUDPEndpoint: LocalAddress, LocalPort, OwningProcess; UDP has no state:
# every bound endpoint can receive). Owners: Get-Process Id -> ProcessName, for the owning ids only.
# No filter parameter on purpose: with -State, no match is an error (localized text), not an empty list.
param($A)
$ErrorActionPreference = 'Stop'
$tcp = @(Get-NetTCPConnection | Where-Object { [int]$_.State -eq 2 })
$udp = @(Get-NetUDPEndpoint)
$owners = @{}
foreach ($c in @($tcp) + @($udp)) { $owners[[int]$c.OwningProcess] = $null }
$procs = @()  # a process that exited since is simply not named
if ($owners.Count -gt 0) { $procs = @(Get-Process -Id @($owners.Keys) -ErrorAction SilentlyContinue) }
[ordered]@{
    tcp = @(foreach ($c in $tcp) {
        [ordered]@{ LocalAddress = [string]$c.LocalAddress; LocalPort = [int]$c.LocalPort; State = [int]$c.State
                    OwningProcess = [int]$c.OwningProcess }
    })
    udp = @(foreach ($c in $udp) {
        [ordered]@{ LocalAddress = [string]$c.LocalAddress; LocalPort = [int]$c.LocalPort
                    OwningProcess = [int]$c.OwningProcess }
    })
    processes = @(foreach ($p in $procs) { [ordered]@{ Id = [int]$p.Id; ProcessName = [string]$p.ProcessName } })
}
