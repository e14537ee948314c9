# Anti-virus products registered with Windows Security Center (root/SecurityCenter2, client Windows only:
# Windows Server has no such namespace, which is reported by its CIM status code, never as "no product").
param($A)
$ErrorActionPreference = 'Stop'
try {
    $products = @(Get-CimInstance -Namespace 'root/SecurityCenter2' -ClassName 'AntiVirusProduct')
} catch [Microsoft.Management.Infrastructure.CimException] {
    return [ordered]@{ available = $false; cim_status = [int]$_.Exception.StatusCode }
}
[ordered]@{
    available = $true
    products = @(foreach ($p in $products) {
        [ordered]@{ displayName = [string]$p.displayName; productState = $p.productState
                    pathToSignedProductExe = [string]$p.pathToSignedProductExe; timestamp = [string]$p.timestamp }
    })
}
