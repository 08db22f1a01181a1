<#ftl output_format="plainText">
<#assign requiredActionsText><#if requiredActions??><#list requiredActions><#items as reqActionItem>${msg("requiredAction.${reqActionItem}")}<#sep>, </#items></#list></#if></#assign>
<#assign inviters><#list user.organizations as organization>${organization.name}<#sep>, </#list></#assign>
<#if inviters?has_content>${msg("socleInvitedBy", inviters)}<#else>${msg("socleInvitedByPlatform")}</#if>

${msg("socleWhat")}

${msg("socleAccount", user.username)}

${msg("socleSteps", requiredActionsText)}

${link}

${msg("socleExpiry", linkExpirationFormatter(linkExpiration))}

${msg("socleNext")}

${msg("socleIgnore")}
