# Members of the local Administrators group on a running PC (the SAM hive is closed even to administrators).
# The group is found by its SID S-1-5-32-544 (its name is translated: "Administrators", "Administratoren"),
# and read through ADSI WinNT, which lists every member by objectSid, Entra ID (S-1-12-1-...) members
# included (Get-LocalGroupMember fails on those: "Failed to compare two elements in the array").
# A member whose SID cannot be read keeps its ADsPath; the collector never guesses a SID from a name.
param($A)
$ErrorActionPreference = 'Stop'
$gsid = New-Object Security.Principal.SecurityIdentifier('S-1-5-32-544')
$gname = $gsid.Translate([Security.Principal.NTAccount]).Value.Split('\')[-1]
$group = [ADSI]"WinNT://$env:COMPUTERNAME/$gname,group"
function Get-Com($o, [string]$name) { return $o.GetType().InvokeMember($name, 'GetProperty', $null, $o, $null) }
$members = @(foreach ($m in @($group.Invoke('Members'))) {
    $row = [ordered]@{ sid = $null; name = $null; adspath = $null; class = $null; error = $null }
    try { $row.adspath = [string](Get-Com $m 'ADsPath') } catch { }
    try { $row.name = [string](Get-Com $m 'Name') } catch { }
    try { $row.class = [string](Get-Com $m 'Class') } catch { }
    try { $row.sid = (New-Object Security.Principal.SecurityIdentifier([byte[]](Get-Com $m 'objectSid'), 0)).Value }
    catch { $row.error = 'objectSid unreadable' }
    $row
})
[ordered]@{ group_sid = $gsid.Value; group_name = $gname; members = $members }
