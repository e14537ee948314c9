# mamoru's PowerShell batch driver: runs every requested part in its own runspace, each under its own
# timeout and try/catch, and writes one frame line per part:
#   MAMORU-PART <nonce> <part> ok|error|timeout <base64 of UTF-8 text>
# then "MAMORU-END <nonce>". Base64 keeps the frames ASCII whatever the console code page (CP932 on a
# Japanese PC). Parameters arrive as base64 JSON: no command text is ever built from data.
param([string]$ParamsB64)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$p = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($ParamsB64)) | ConvertFrom-Json
$nonce = [string]$p.nonce
function Write-Frame([string]$name, [string]$status, [string]$text) {
    $b = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($text))
    [Console]::Out.Write("MAMORU-PART $nonce $name $status $b`n")
    [Console]::Out.Flush()
}
$parts = @($p.parts)
$pool = [runspacefactory]::CreateRunspacePool(1, [Math]::Max(1, $parts.Count))
$pool.Open()
$clock = [Diagnostics.Stopwatch]::StartNew()
$jobs = foreach ($part in $parts) {
    $ps = [powershell]::Create()
    $ps.RunspacePool = $pool
    [void]$ps.AddScript([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String([string]$part.script)))
    [void]$ps.AddArgument($part.args)
    [pscustomobject]@{ name = [string]$part.name; timeout = [int]$part.timeout_ms; ps = $ps; handle = $ps.BeginInvoke() }
}
foreach ($j in @($jobs)) {
    $left = [int][Math]::Max(0, $j.timeout - $clock.ElapsedMilliseconds)
    if (-not $j.handle.AsyncWaitHandle.WaitOne($left)) {
        Write-Frame $j.name 'timeout' ''
        [void]$j.ps.BeginStop($null, $null)
        continue
    }
    try {
        $out = $j.ps.EndInvoke($j.handle)
        if ($out.Count -lt 1) {
            $msg = 'no output'
            if ($j.ps.Streams.Error.Count -gt 0) { $msg = [string]$j.ps.Streams.Error[0] }
            Write-Frame $j.name 'error' $msg
        } else {
            Write-Frame $j.name 'ok' (ConvertTo-Json -InputObject $out[0] -Depth 8 -Compress)
        }
    } catch {
        Write-Frame $j.name 'error' ([string]$_.Exception.Message)
    }
}
[Console]::Out.Write("MAMORU-END $nonce`n")
[Console]::Out.Flush()
[Environment]::Exit(0)
