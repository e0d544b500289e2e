#!powershell
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

#AnsibleRequires -CSharpUtil Ansible.Basic

# Runs ONE ADSync cmdlet and returns its output. Every decision (busy, staging, polling, results) is made by
# the entra_connect_sync action on the controller, where it is tested; keep this file free of logic.

$spec = @{
    options = @{
        cmdlet = @{ type = 'str'; required = $true; choices = 'Get-ADSyncScheduler', 'Start-ADSyncSyncCycle', 'Get-ADSyncRunProfileResult' }
        policy_type = @{ type = 'str'; default = 'Initial'; choices = 'Initial', 'Delta' }
        number_requested = @{ type = 'int'; default = 100 }
    }
    supports_check_mode = $true
}
$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$module.Result.changed = $false

function Format-Date($value) {
    # Windows PowerShell's ConvertTo-Json writes dates as \/Date(ms)\/; ISO 8601 is readable on the controller.
    if ($null -eq $value) { return $null }
    return ([DateTime]$value).ToString('o')
}

try {
    Import-Module -Name ADSync -ErrorAction Stop
}
catch {
    $module.FailJson("Cannot load the ADSync PowerShell module: $($_.Exception.Message). Run this on the Microsoft Entra Connect server " +
        "(delegate_to the server) with an account in ADSyncAdmins.", $_)
}

try {
    switch ($module.Params.cmdlet) {
        'Get-ADSyncScheduler' {
            $scheduler = Get-ADSyncScheduler -ErrorAction Stop
            $module.Result.output = @{
                SyncCycleInProgress = [bool]$scheduler.SyncCycleInProgress
                SchedulerSuspended = [bool]$scheduler.SchedulerSuspended
                StagingModeEnabled = [bool]$scheduler.StagingModeEnabled
                SyncCycleEnabled = [bool]$scheduler.SyncCycleEnabled
                MaintenanceEnabled = [bool]$scheduler.MaintenanceEnabled
                NextSyncCyclePolicyType = [string]$scheduler.NextSyncCyclePolicyType
                NextSyncCycleStartTimeInUTC = Format-Date $scheduler.NextSyncCycleStartTimeInUTC
                CurrentlyEffectiveSyncCycleInterval = [string]$scheduler.CurrentlyEffectiveSyncCycleInterval
            }
        }
        'Start-ADSyncSyncCycle' {
            if ($module.CheckMode) {
                $module.Result.changed = $true
            }
            else {
                $started = Start-ADSyncSyncCycle -PolicyType $module.Params.policy_type -ErrorAction Stop
                $module.Result.changed = $true
                $module.Result.output = @{ Result = [string]$started.Result }
            }
        }
        'Get-ADSyncRunProfileResult' {
            $module.Result.output = @(
                Get-ADSyncRunProfileResult -NumberRequested $module.Params.number_requested -ErrorAction Stop | ForEach-Object {
                    @{
                        RunHistoryId = [string]$_.RunHistoryId
                        ConnectorName = [string]$_.ConnectorName
                        RunProfileName = [string]$_.RunProfileName
                        Result = [string]$_.Result
                        IsRunComplete = [bool]$_.IsRunComplete
                        StartDate = Format-Date $_.StartDate
                        EndDate = Format-Date $_.EndDate
                    }
                }
            )
        }
    }
}
catch {
    # A cmdlet error (such as "... is busy") is an answer for the controller to judge, not a module failure.
    $module.Result.error = @{
        type = $_.Exception.GetType().FullName
        message = $_.Exception.Message
    }
}

$module.ExitJson()
