<#outputformat "plainText">
<#assign requiredActionsText><#if requiredActions??><#list requiredActions><#items as reqActionItem>${msg("requiredAction.${reqActionItem}")}<#sep>, </#sep></#items></#list></#if></#assign>
<#assign inviters><#list user.organizations as organization>${organization.name}<#sep>, </#sep></#list></#assign>
</#outputformat>
<#import "template.ftl" as layout>
<@layout.emailLayout>
<p><strong><#if inviters?has_content>${msg("socleInvitedBy", inviters)}<#else>${msg("socleInvitedByPlatform")}</#if></strong></p>
<p>${msg("socleWhat")}</p>
<p>${msg("socleAccount", user.username)}</p>
<p>${msg("socleSteps", requiredActionsText)}</p>
<p><a href="${link}">${msg("socleLinkLabel")}</a></p>
<p>${msg("socleExpiry", linkExpirationFormatter(linkExpiration))}</p>
<p>${msg("socleNext")}</p>
<p>${msg("socleIgnore")}</p>
</@layout.emailLayout>
