# Microsoft Defender Antivirus as Get-MpComputerStatus reports it (the cmdlet wraps this CIM class).
# Values are passed through as they are ($null stays null: an absent value is never "off").
# CIM status codes, not messages, tell "Defender is not there" (3 invalid namespace, 5 invalid class).
param($A)
$ErrorActionPreference = 'Stop'
function Iso($d) {
    if ($null -eq $d) { return $null }
    return ([datetime]$d).ToUniversalTime().ToString('o', [Globalization.CultureInfo]::InvariantCulture)
}
try {
    $s = Get-CimInstance -Namespace 'root/Microsoft/Windows/Defender' -ClassName 'MSFT_MpComputerStatus'
} catch [Microsoft.Management.Infrastructure.CimException] {
    return [ordered]@{ available = $false; cim_status = [int]$_.Exception.StatusCode }
}
[ordered]@{
    available = $true
    AMRunningMode = $s.AMRunningMode
    AMServiceEnabled = $s.AMServiceEnabled
    AntivirusEnabled = $s.AntivirusEnabled
    RealTimeProtectionEnabled = $s.RealTimeProtectionEnabled
    OnAccessProtectionEnabled = $s.OnAccessProtectionEnabled
    BehaviorMonitorEnabled = $s.BehaviorMonitorEnabled
    IsTamperProtected = $s.IsTamperProtected
    AntivirusSignatureAge = $s.AntivirusSignatureAge
    AntivirusSignatureLastUpdated = (Iso $s.AntivirusSignatureLastUpdated)
    AntivirusSignatureVersion = $s.AntivirusSignatureVersion
    DefenderSignaturesOutOfDate = $s.DefenderSignaturesOutOfDate
    AMProductVersion = $s.AMProductVersion
}
