# Installed updates (Get-HotFix: Win32_QuickFixEngineering with InstalledOn as a date). Dates are written
# as ISO 8601 UTC in the invariant culture; a date Windows could not tell stays null.
param($A)
$ErrorActionPreference = 'Stop'
[ordered]@{
    hotfixes = @(foreach ($h in @(Get-HotFix)) {
        $on = $null
        if ($h.InstalledOn -is [datetime]) {
            $on = $h.InstalledOn.ToUniversalTime().ToString('o', [Globalization.CultureInfo]::InvariantCulture)
        }
        [ordered]@{ HotFixID = [string]$h.HotFixID; Description = [string]$h.Description; InstalledOn = $on }
    })
}
