# BitLocker per volume: GetProtectionStatus() and GetConversionStatus() are CALLED (the cached
# ProtectionStatus property is not trusted: it is recorded beside, as cached_ProtectionStatus).
# Needs an elevated session: access denied comes back as CIM status 2.
param($A)
$ErrorActionPreference = 'Stop'
try {
    $vols = @(Get-CimInstance -Namespace 'root/cimv2/Security/MicrosoftVolumeEncryption' -ClassName 'Win32_EncryptableVolume')
} catch [Microsoft.Management.Infrastructure.CimException] {
    return [ordered]@{ available = $false; cim_status = [int]$_.Exception.StatusCode }
}
[ordered]@{
    available = $true
    volumes = @(foreach ($v in $vols) {
        $prot = Invoke-CimMethod -InputObject $v -MethodName 'GetProtectionStatus'
        $conv = Invoke-CimMethod -InputObject $v -MethodName 'GetConversionStatus'
        [ordered]@{
            DeviceID = [string]$v.DeviceID; DriveLetter = $v.DriveLetter; VolumeType = $v.VolumeType
            ProtectionStatus = $prot.ProtectionStatus; protection_rc = $prot.ReturnValue
            ConversionStatus = $conv.ConversionStatus; EncryptionPercentage = $conv.EncryptionPercentage
            conversion_rc = $conv.ReturnValue; cached_ProtectionStatus = $v.ProtectionStatus
        }
    })
}
